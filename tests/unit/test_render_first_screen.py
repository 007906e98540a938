"""Report HTML pieces: the first screen (ids the browser test looks for, escaping) and wide matrices
collapsed to the rows that differ."""

import pandas as pd

from playbook.helpers import render
from playbook.helpers.headline import Headline, Number


def test_first_screen_has_each_element_and_escapes():
    hl = Headline(verdict="GO", confidence="high", headline="<b>x</b>", configuration="Enable: draft <d>",
                  numbers=[Number(key="speedup", label="S", value="1.30x", verdict="go"),
                           Number(key="acceptance", label="A", value="0.75"),
                           Number(key="concurrency", label="C", value="-20%", verdict="borderline")],
                  launch_label="Launch command", launch_command="vllm serve '<m>'", would_change=["a <b"])
    page = render.first_screen(hl, '<img alt="c" src="data:image/png;base64,AA==">')
    for i in ("first-screen", "verdict", "configuration", "headline-speedup", "headline-acceptance",
              "headline-concurrency", "deciding-chart", "launch", "would-change"):
        assert f'id="{i}"' in page, i
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page and "&lt;d&gt;" in page and "a &lt;b" in page
    assert page.index('id="headline-speedup"') < page.index('id="deciding-chart"')


def test_collapse_merges_identical_rows_and_names_constant_columns():
    df = pd.DataFrame([
        {"t": "bf16", "d": "bf16", "w": 40, "fits": False, "tokens": 0, "lost": 20.5},
        {"t": "int8", "d": "bf16", "w": 20, "fits": True, "tokens": 128, "lost": 20.5},
        {"t": "int4", "d": "bf16", "w": 10, "fits": True, "tokens": 128, "lost": 20.5},
    ])
    short, note = render.collapse(df, ["t", "d"], ignore=["w"])
    assert len(short) == 2 and "w" not in short.columns and "lost" not in short.columns
    assert short.iloc[1]["t / d"] == "int8/bf16, int4/bf16" and short.iloc[1]["rows"] == 2
    assert note == "Same in every row: lost = 20.5."
    same, _ = render.collapse(df.assign(fits=True, tokens=1), ["t", "d"], ignore=["w"])
    assert list(same["t / d"]) == ["all 3 rows"]


def test_figure_is_an_inline_png():
    import matplotlib.pyplot as plt

    fig, _ = plt.subplots()
    img = render.figure(fig, "a <chart>", "x")
    plt.close(fig)
    assert img.startswith('<img id="x" alt="a &lt;chart&gt;" src="data:image/png;base64,iVBOR')
