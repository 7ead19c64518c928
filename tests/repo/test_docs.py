"""The documentation stays true to the repository: the key table of docs/configuration.md is the
schema's, every path, script, Snakemake target and config key that README.md and docs/*.md name
exists, the README stays a front door (at most 200 lines) and no page tells project history.

`python tests/repo/test_docs.py` rewrites the key table of docs/configuration.md from the schema.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import yaml

from helpers import REPO

SCHEMA = REPO / "workflow/schemas/config.schema.yaml"
CONFIG_PAGE = REPO / "docs/configuration.md"
TABLE_START = "<!-- key table: generated from workflow/schemas/config.schema.yaml by `python tests/repo/test_docs.py` -->"
TABLE_END = "<!-- end of key table -->"
README_MAX_LINES = 200
# The named targets the README documents; each must be a rule of the workflow.
DOCUMENTED_TARGETS = {"all", "figures", "evaluation", "new_session", "sweep"}
# Top-level folders and files of the repository that the docs name by path.
REPO_ROOTS = ("benchmarks", "config", "docs", "envs", "profiles", "src", "tests", "workflow", ".ci")
REPO_FILES = ("Snakefile", "pyproject.toml", "README.md")
FILE_SUFFIXES = {"py", "md", "smk", "yaml", "yml", "json", "csv", "tsv", "html", "png", "pdf", "parquet", "pt"}
HISTORY = [
    r"\bissues? #?\d+", r"(?<![\w&])#\d+\b", r"\baim(ed)? (for|was)\b", r"\bthe aim\b", r"\bwas found\b",
    r"\blast stop\b", r"\bearlier (note|method|version)\b", r"\bnow has\b", r"\(was:",
    r"\bwe (changed|fixed|found)\b",
]


def doc_pages() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


# --- the key table -----------------------------------------------------------------------------------

def schema_rows(schema: dict, prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted key, default as YAML, description) of every key of the schema, nested objects
    flattened, in the schema's order; a key without a default is (required)."""
    rows = []
    for key, sub in schema.get("properties", {}).items():
        name = f"{prefix}{key}"
        if sub.get("type") == "object" and "properties" in sub:
            rows += schema_rows(sub, name + ".")
            continue
        default = "(required)" if "default" not in sub else "`" + inline_yaml(sub["default"]) + "`"
        rows.append((name, default, " ".join(sub.get("description", "").split())))
    return rows


def inline_yaml(value) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).removesuffix("\n...\n").strip()


def key_table() -> str:
    """The configuration page's key table, rendered from the schema."""
    rows = schema_rows(yaml.safe_load(SCHEMA.read_text()))
    lines = ["| key | default | meaning |", "| --- | --- | --- |"]
    lines += [f"| `{key}` | {default} | {meaning} |" for key, default, meaning in rows]
    return "\n".join(lines)


def page_table(text: str) -> str:
    start, end = text.index(TABLE_START) + len(TABLE_START), text.index(TABLE_END)
    return text[start:end].strip()


def test_configuration_key_table_matches_the_schema():
    """docs/configuration.md lists every key of the schema with its default and description, and no other."""
    table = page_table(CONFIG_PAGE.read_text())
    rows = {m[1]: m[2] for m in re.finditer(r"^\| `([\w.]+)` \| ((?:`[^`]*`)|\(required\)) \|", table, re.M)}
    schema = yaml.safe_load(SCHEMA.read_text())
    expected = {key: default for key, default, _ in schema_rows(schema)}
    assert set(rows) == set(expected), set(rows) ^ set(expected)
    for key, default in expected.items():  # the defaults read back as the schema's values
        assert rows[key] == default, (key, rows[key], default)
    assert table == key_table(), "docs/configuration.md's key table is stale: run python tests/repo/test_docs.py"


def test_key_table_defaults_read_back_as_the_schema_defaults():
    """The rendered defaults are YAML that loads back to the schema's own values."""
    schema = yaml.safe_load(SCHEMA.read_text())
    rows = dict((key, default) for key, default, _ in schema_rows(schema))
    assert rows["sessions"] == "(required)"
    assert yaml.safe_load(rows["cebra.learning_rate"].strip("`")) == 3e-4
    assert yaml.safe_load(rows["sweep.select_by"].strip("`")) == ["validation_error_cm"]
    assert yaml.safe_load(rows["new_session.iterations"].strip("`")) is None
    assert yaml.safe_load(rows["data.download.base_url"].strip("`")).startswith("https://")


# --- every path, script, target and config key named is real --------------------------------------

def workflow_rules() -> set[str]:
    rules = set()
    for path in [REPO / "Snakefile", *(REPO / "workflow/rules").glob("*.smk")]:
        rules |= set(re.findall(r"^\s*rule (\w+):", path.read_text(), re.M))
    return rules


def workflow_outputs() -> list[re.Pattern]:
    """Every results/ path the workflow writes or reads, as a pattern ({wildcard} -> .+): the plan's
    paths (cebra_workflow.paths), its figures, and the benchmark files named in the rules."""
    from cebra_core.steps.fits import CHECKPOINT_NAME
    from cebra_workflow import paths as plan_paths

    found = {v for k, v in vars(plan_paths).items() if k.isupper() and isinstance(v, str) and v.startswith("results/")}
    found.add(f"{plan_paths.FIT_FOLDER}/{CHECKPOINT_NAME}")  # a running fit's checkpoint, beside its model
    texts = [path.read_text() for path in [REPO / "Snakefile", *(REPO / "workflow/rules").glob("*.smk"),
                                           *(REPO / "src/cebra_workflow").glob("*.py")]]
    for text in texts:
        found |= set(re.findall(r"""f?["'](results/[^"']+)["']""", text))
        for name, suffix in re.findall(r"""paths\.figure\(f?["']([^"']+)["'](?:,\s*["'](\w+)["'])?\)""", text):
            found.add(plan_paths.figure(name, suffix or "png"))
    patterns = []
    for path in found:
        path = path.replace("{{", "{").replace("}}", "}")  # expand()'s escaped wildcards
        parts = re.split(r"\{[^{}]*\}", path)
        patterns.append(re.compile(".+".join(re.escape(part) for part in parts)))
    return patterns


def expand_alternatives(path: str) -> list[str]:
    """`a.{parquet,csv}` -> a.parquet, a.csv (the docs' shorthand for sibling files)."""
    m = re.search(r"\{([^{}]*,[^{}]*)\}", path)
    if not m:
        return [path]
    return [p for alt in m[1].split(",") for p in expand_alternatives(path[: m.start()] + alt + path[m.end():])]


def output_named(path: str, patterns: list[re.Pattern]) -> bool:
    """A documented results/ path (placeholders {x} or <x>, … for 'anything below'; a trailing / or a
    last name without a dot is a folder) that some output of the workflow matches."""
    for concrete in expand_alternatives(path):
        last = concrete.rstrip("/").rsplit("/", 1)[-1]
        open_end = concrete.endswith("/") or "…" in concrete or "..." in concrete or "." not in last
        concrete = re.split(r"…|\.\.\.", concrete)[0]
        concrete = re.sub(r"\{[^{}]*\}|<[^<>]*>", "X", concrete).rstrip("/")
        if open_end:  # a folder: some output lies below it
            ok = any(_prefix_match(p, concrete) for p in patterns)
        else:
            ok = any(p.fullmatch(concrete) for p in patterns)
        if not ok:
            return False
    return True


def _prefix_match(pattern: re.Pattern, prefix: str) -> bool:
    """Whether some path the pattern matches starts with `prefix` (up to a / or part of a name)."""
    segments = pattern.pattern.split("/")
    return any(re.fullmatch("/".join(segments[:k]) + r"[^/]*", prefix) for k in range(1, len(segments) + 1))


def code_spans(text: str) -> list[str]:
    """The contents of fenced code blocks and `inline code` of a markdown text."""
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", text, re.M | re.S)
    rest = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.M | re.S)
    return blocks + re.findall(r"`([^`\n]+)`", rest)


def schema_keys(schema: dict, prefix: str = "") -> set[str]:
    keys = set()
    for key, sub in schema.get("properties", {}).items():
        keys.add(prefix + key)
        keys |= schema_keys(sub, f"{prefix}{key}.")
    return keys


def doc_problems(text: str, page: str, here: Path) -> list[str]:
    """What a page names that does not exist: repository paths, links, results/ paths no rule writes,
    scripts, `python -m` modules, `snakemake <target>` targets and config keys."""
    problems = []
    code = code_spans(text)
    joined = "\n".join(code)
    # repository paths, anywhere in the page (prose, code, links)
    roots = "|".join(re.escape(root) for root in REPO_ROOTS)
    for path in set(re.findall(rf"(?<![\w./~$-])((?:{roots})/[\w./*+-]*\w/?)", text)):
        if not any(REPO.glob(path.rstrip("/"))) and not (REPO / path).exists():
            problems.append(f"{page}: names {path}, which does not exist")
    for name in REPO_FILES:
        if re.search(rf"`{re.escape(name)}`", text) and not (REPO / name).exists():
            problems.append(f"{page}: names {name}, which does not exist")
    # relative links between the pages (and to files)
    for target in sorted(set(re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text))):
        if not re.match(r"\w+:", target) and not (here.parent / target).exists():
            problems.append(f"{page}: links to {target}, which does not exist")
    # results/ paths: something the workflow writes
    patterns = workflow_outputs()
    for span in code:
        for path in re.findall(r"(?<![\w/])(results/(?:\{[^{}\s]*\}|[^\s`'\",;:(){}])*)", span):
            if not output_named(path, patterns):
                problems.append(f"{page}: names {path}, which no rule of the workflow writes")
    # scripts and modules
    for script in set(re.findall(r"python3?(?:\.\d+)? ([\w./-]+\.py)\b", joined)):
        if not (REPO / script).is_file():
            problems.append(f"{page}: runs {script}, which does not exist")
    for module in set(re.findall(r"python3?(?:\.\d+)? -m ([\w.]+)", joined)):
        if importlib.util.find_spec(module.split(".")[0]) is None:
            problems.append(f"{page}: runs python -m {module}, which is not importable")
    # snakemake targets: `snakemake NAME` (a rule name, not a flag or a file)
    rules = workflow_rules()
    for target in set(re.findall(r"\bsnakemake[ \t]+([A-Za-z_]\w*)\b(?![./=-])", joined)):
        if target not in rules:
            problems.append(f"{page}: names the target `snakemake {target}`, which is not a rule of the workflow")
    # config keys: --config KEY=VALUE, `section.key`, `key: value`
    keys = schema_keys(yaml.safe_load(SCHEMA.read_text()))
    top = {key for key in keys if "." not in key}
    named = set()
    for args in re.findall(r"--config((?:[ \t]+[\w.]+=\S+)+)", joined):
        named |= {arg.split("=")[0] for arg in args.split()}
    for span in code:
        m = re.fullmatch(r"([a-z_]+(?:\.[a-z_]+)+)(?:: .*)?", span.strip())
        if m and m[1].split(".")[0] in top and m[1].rsplit(".", 1)[-1] not in FILE_SUFFIXES:
            named.add(m[1])
    for key in sorted(named):
        if key not in keys:
            problems.append(f"{page}: names the config key {key}, which is not in the schema")
    return problems


def test_docs_name_only_what_exists():
    """Every path, link, output, script, target and config key that README.md and docs/*.md name is real."""
    problems = []
    for page in doc_pages():
        problems += doc_problems(page.read_text(), page.relative_to(REPO).as_posix(), page)
    assert not problems, "\n".join(problems)


def test_doc_checks_catch_made_up_names():
    """The checks above fail on a page that names things that do not exist (and pass on real ones)."""
    page = REPO / "docs/example.md"
    good = ("Run `python benchmarks/bench_training.py` or `snakemake sweep --cores 2`; see `config/sample.yaml`,\n"
            "[the workflow](workflow.md), `--config fit_threads=2`, `cebra.max_iterations`, `evaluation.folds: 3`;\n"
            "`results/fits/{split}/seed{seed}/{fit}/model.pt`, `results/tables/consistency.{parquet,csv}`, "
            "`results/benchmarks/…tsv`, `results/figures/embeddings_3d/`.\n")
    assert doc_problems(good, "good", page) == []
    bad = {
        "`config/made_up.yaml`": "config/made_up.yaml",
        "`workflow/rules/nope.smk`": "workflow/rules/nope.smk",
        "[the page](nowhere.md)": "nowhere.md",
        "`python benchmarks/bench_made_up.py`": "bench_made_up.py",
        "`python -m no_such_module_anywhere`": "no_such_module_anywhere",
        "`snakemake made_up_target --cores 2`": "made_up_target",
        "`--config fit_thread=2`": "fit_thread",
        "`cebra.max_iteration`": "cebra.max_iteration",
        "`data.py` `sweep.grids`": "sweep.grids",
        "`evaluation.fold: 3`": "evaluation.fold",
        "`results/tables/made_up.csv`": "results/tables/made_up.csv",
        "`results/nowhere/`": "results/nowhere",
    }
    for snippet, name in bad.items():
        problems = doc_problems(good + snippet + "\n", "bad", page)
        assert problems and all(name in problem for problem in problems), (snippet, problems)


def test_documented_targets_are_rules():
    """The named targets of the README's table exist as rules, and the README names each."""
    readme = (REPO / "README.md").read_text()
    missing = {target for target in DOCUMENTED_TARGETS if f"`snakemake {target}`" not in readme}
    assert not missing, f"README.md does not document {sorted(missing)}"
    assert DOCUMENTED_TARGETS <= workflow_rules(), f"not rules of the workflow: {sorted(DOCUMENTED_TARGETS - workflow_rules())}"


# --- a front door, and no history -----------------------------------------------------------------

def test_readme_is_a_front_door():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move detail into docs/"


def history_phrases(text: str) -> list[str]:
    return [m[0] for pattern in HISTORY for m in re.finditer(pattern, text, re.I)]


def test_docs_tell_no_history():
    """The docs say what is: no issue numbers, no aims, no 'was found', 'last stop', 'earlier note'."""
    found = {page.name: history_phrases(page.read_text()) for page in doc_pages()}
    assert not {name: hits for name, hits in found.items() if hits}
    assert history_phrases("as issue 12 said, the speed-ups aimed for were not reached; the leak was found; "
                           "the last stop; an earlier note; (was: slow); see #14") == [
        "issue 12", "#14", "aimed for", "was found", "last stop", "earlier note", "(was:"]


if __name__ == "__main__":  # rewrite the key table of docs/configuration.md from the schema
    text = CONFIG_PAGE.read_text()
    start, end = text.index(TABLE_START) + len(TABLE_START), text.index(TABLE_END)
    CONFIG_PAGE.write_text(text[:start] + "\n\n" + key_table() + "\n\n" + text[end:])
    print(f"{CONFIG_PAGE.relative_to(REPO)}: key table rewritten from {SCHEMA.relative_to(REPO)}", file=sys.stderr)
