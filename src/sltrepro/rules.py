"""The names a paper's workflow uses, in one object: ``S2S = paper_rules("saddle_to_saddle")``.

Every ``workflows/<paper>.smk`` starts with one such line (``paper_rules`` in common.smk
builds a :class:`PaperRules` for the run's profile and results root) and spells its config,
folders, logs, benchmarks and shell commands through it, so that no smk repeats its paper's
name or invents its own variable names for them.
"""

import ast
from dataclasses import dataclass
from pathlib import Path

from snakemake.exceptions import WorkflowError

from .config import ConfigError, reads_spec


@dataclass(frozen=True)
class PaperRules:
    """``paper``'s rule helpers for one run: ``cfg`` is its validated profile block."""

    paper: str
    profile: str
    results: str
    cfg: dict

    @property
    def out(self) -> str:
        """The paper's results folder, ``<results>/<profile>/<paper>``."""
        return f"{self.results}/{self.profile}/{self.paper}"

    def log(self, name: str) -> str:
        """Where the rule ``name`` writes its log (for ``log:``)."""
        return f"{self.out}/logs/{name}.log"

    def benchmark(self, name: str) -> str:
        """Where the rule ``name`` records its time and memory (for ``benchmark:``)."""
        return f"{self.out}/benchmarks/{name}.tsv"

    def reads(self, *keys: str) -> str:
        """A rule's ``params: reads=P.reads(key, "block.key", ...)``: the config keys its step
        reads, with a digest of their values. Snakemake reruns a rule whose params changed,
        so a config edit reruns exactly the rules that read what changed (and what depends on
        them). A key the block lacks stops the workflow with an error naming the file."""
        where = f"papers/{self.paper}/config.yaml (profile {self.profile!r})"
        try:
            return reads_spec(self.cfg, keys, where=where)
        except ConfigError as err:
            raise WorkflowError(str(err)) from None

    def step(self, name: str, outdir: str, extra: str = "", inputs=(), outputs=()) -> str:
        """The shell command that runs step ``name`` into ``outdir``; the rule must declare
        ``params: reads=P.reads(...)``: the step sees only those config keys.
        ``inputs``/``outputs`` name entries of the rule's own ``input:``/``output:``; the step
        reads them as ``ctx.input(name)`` (``ctx.input_list(name)`` for a list) and
        ``ctx.output(name)``, so every path is written once, in the rule."""
        run = (
            f"sltrepro run {self.paper} {name} --profile {self.profile} --results {self.results} "
            f"--outdir {outdir} --threads {{threads}} --reads {{params.reads}}"
        )
        files = [f"--input {n}={{input.{n}}}" for n in inputs]
        files += [f"--output {n}={{output.{n}}}" for n in outputs]
        return " ".join(part for part in (run, *files, extra, "&> {log}") if part)


def figure_names(paper: str, module: str = "figures") -> tuple[str, ...]:
    """The ``FIGURES`` tuple that ``sltrepro/papers/<paper>/<module>.py`` exports, read from
    its source rather than imported: importing a figures module pulls in torch and seaborn
    (seconds of CPU), and every Snakemake parse reads the list of every paper."""
    path = Path(__file__).parent / "papers" / paper / f"{module}.py"
    for node in ast.parse(path.read_text(), filename=str(path)).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "FIGURES" for t in node.targets
        ):
            names = ast.literal_eval(node.value)
            if isinstance(names, tuple) and all(isinstance(n, str) for n in names):
                return names
            raise WorkflowError(f"{path}: FIGURES must be a tuple of figure names")
    raise WorkflowError(f"{path} exports no FIGURES tuple (the figures the paper draws)")
