"""A small page object for JupyterLab 4 driven by Selenium: open, run through the menus, read outputs."""

from __future__ import annotations

import time

from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"
TRACEBACK = "Traceback (most recent call last)"


class LabPage:
    def __init__(self, driver):
        self.d = driver

    # -- waiting ------------------------------------------------------------------------------
    def wait_until(self, predicate, timeout: float, what: str, poll: float = 0.5):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                value = predicate()
            except (StaleElementReferenceException, WebDriverException):
                value = None
            if value:
                return value
            time.sleep(poll)
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")

    def css(self, selector: str, root=None):
        return (root or self.d).find_elements(By.CSS_SELECTOR, selector)

    def panel(self):
        return self.wait_until(lambda: (self.css(PANEL) or [None])[0], 120, "a notebook panel")

    def busy(self) -> bool:
        panel = self.panel()
        idle = self.css(".jp-Notebook-ExecutionIndicator[data-status='idle']", panel)
        running = [p for p in self.css(".jp-InputPrompt", panel) if "[*]" in p.text]
        return not idle or bool(running)

    def wait_idle(self, timeout: float, settle: float = 2.0) -> None:
        """Idle kernel and no [*] prompt, twice in a row `settle` seconds apart."""
        def idle_twice():
            if self.busy():
                return False
            time.sleep(settle)
            return not self.busy()
        self.wait_until(idle_twice, timeout, "the kernel to finish every queued cell")

    # -- navigation ---------------------------------------------------------------------------
    def open(self, url: str, timeout: float = 180) -> None:
        """Load a notebook URL and wait for its kernel to be idle."""
        self.d.get(url)
        name = url.split("?")[0].rsplit("/", 1)[-1]
        self.wait_until(
            lambda: any(name in t.text for t in self.css(".lm-TabBar-tab.lm-mod-current .lm-TabBar-tabLabel")),
            timeout, f"the tab of {name}")
        self.wait_idle(timeout)
        self.dismiss_toasts()

    def dismiss_toasts(self) -> None:
        """JupyterLab asks about news on first start; answer No so it covers nothing."""
        for button in self.css(".Toastify__toast button, .jp-toast-button"):
            if button.text.strip() == "No":
                button.click()

    def menu(self, top: str, item: str) -> None:
        self.dismiss_toasts()
        labels = [e for e in self.css(".lm-MenuBar-itemLabel") if e.text.strip() == top]
        assert labels, f"no menu '{top}' in the menu bar"
        labels[0].click()
        entry = self.wait_until(
            lambda: next((e for e in self.css(".lm-Menu-itemLabel") if e.text.strip() == item), None),
            10, f"menu item {top} > {item}")
        entry.click()

    def run_all(self) -> None:
        self.menu("Run", "Run All Cells")

    def cells(self):
        return self.css(".jp-Cell", self.panel())

    def cell_index(self, text: str) -> int:
        for i, cell in enumerate(self.cells()):
            editor = self.css(".jp-InputArea-editor", cell)
            if editor and text in editor[0].text:
                return i
        raise AssertionError(f"no cell containing {text!r} in the open notebook")

    def run_from(self, index: int) -> None:
        """Select cell `index` (command mode) and use Run > Run Selected Cell and All Below."""
        cell = self.cells()[index]
        self.d.execute_script("arguments[0].scrollIntoView({block: 'center'})", cell)
        prompt = self.css(".jp-InputPrompt", cell)[0]
        prompt.click()
        self.wait_until(lambda: "jp-mod-active" in (self.cells()[index].get_attribute("class") or ""), 10,
                        f"cell {index} to be selected")
        self.menu("Run", "Run Selected Cell and All Below")

    # -- reading outputs ----------------------------------------------------------------------
    def outputs_text(self) -> str:
        return "\n".join(o.text for o in self.css(".jp-OutputArea-output", self.panel()))

    def wait_for_output(self, selector: str, timeout: float):
        """The first output element matching `selector`; fails at once, with it, on a traceback."""
        def found():
            tracebacks = self.tracebacks()
            if tracebacks:
                raise AssertionError(f"a cell failed while waiting for {selector!r}:\n{tracebacks[0]}")
            return (self.css(f".jp-OutputArea-output {selector}", self.panel()) or [None])[0]
        return self.wait_until(found, timeout, f"an output matching {selector!r}")

    def tracebacks(self) -> list[str]:
        return [o.text for o in self.css(".jp-OutputArea-output", self.panel()) if TRACEBACK in o.text]

    def table(self, selector: str) -> list[dict[str, str]]:
        """The rows of the first output table matching `selector`, as {header: cell text}."""
        rows = self.table_or_none(selector)
        assert rows is not None, f"no output table matching {selector!r}"
        return rows

    def table_or_none(self, selector: str) -> list[dict[str, str]] | None:
        tables = self.css(f".jp-OutputArea-output {selector}", self.panel())
        return table_rows(tables[0]) if tables else None

    # -- the playbook form --------------------------------------------------------------------
    def form(self):
        return self.wait_until(lambda: (self.css(".playbook-form", self.panel()) or [None])[0], 60,
                               "the parameter form (ui.show_form) to render")

    def set_field(self, name: str, value) -> None:
        """Type a value into the form's box for `name` and commit it with Enter, as a user does."""
        box = self.css(f".playbook-field-{name} input", self.form())
        assert box, f"the form has no input for {name}"
        self.d.execute_script("arguments[0].scrollIntoView({block: 'center'})", box[0])
        box[0].click()
        old = box[0].get_attribute("value") or ""
        box[0].send_keys(Keys.END, *([Keys.BACKSPACE] * (len(old) + 2)), str(value), Keys.ENTER)

    def form_status(self) -> str:
        status = self.css(".playbook-form-status", self.form())
        return status[0].text if status else ""


def table_rows(table) -> list[dict[str, str]]:
    headers = [th.text.strip() for th in table.find_elements(By.CSS_SELECTOR, "thead th")]
    rows = []
    for tr in table.find_elements(By.CSS_SELECTOR, "tbody tr"):
        cells = [c.text.strip() for c in tr.find_elements(By.CSS_SELECTOR, "th, td")]
        if len(headers) == len(cells) + 1:  # a blank corner header over a header-less index
            cells = ["", *cells]
        rows.append(dict(zip(headers or [str(i) for i in range(len(cells))], cells, strict=False)))
    return rows
