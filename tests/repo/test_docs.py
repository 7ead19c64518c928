"""The documentation stays true to the repository: the key table of docs/configuration.md is the
schema's, every path, script, Snakemake target, config key and module that README.md and docs/*.md
name exists, docs/CONTRACTS.md lists every module of src/ in its layer, the example configs and the
docs' YAML snippets are valid configs, every measured table names its source and machine, no page
claims a GPU figure without the GPU's name, the README stays a front door (at most 200 lines) and
no page tells project history.

`python tests/repo/test_docs.py` rewrites the key table of docs/configuration.md from the schema.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

if __name__ == "__main__":  # run as a script: tests/ holds the helpers, as pytest's pythonpath says
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from helpers import REPO  # noqa: E402

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

def schema_rows(schema: dict, prefix: str = "", defs: dict | None = None) -> list[tuple[str, str, str]]:
    """(dotted key, default as YAML, description) of every key of the schema, in the schema's order;
    a nested object is flattened unless it holds the defaults of its keys itself (then it is one
    row, e.g. ``labels``); a key without a default is (required); a description may come by $ref."""
    defs = schema.get("$defs", {}) if defs is None else defs
    rows = []
    for key, sub in schema.get("properties", {}).items():
        name = f"{prefix}{key}"
        keys = sub.get("properties", {})
        if sub.get("type") == "object" and keys and not ("default" in sub and any("default" not in k for k in keys.values())):
            rows += schema_rows(sub, name + ".", defs)
            continue
        default = "(required)" if "default" not in sub else "`" + inline_yaml(sub["default"]) + "`"
        description = sub.get("description") or defs.get(sub.get("$ref", "").rpartition("/")[2], {}).get("description", "")
        rows.append((name, default, " ".join(description.split())))
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
    assert yaml.safe_load(rows["sweep.select_by"].strip("`")) == ["validation_decoding"]
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


# --- every module named is real, and CONTRACTS.md lists every module in its layer -------------------

SRC = REPO / "src"
CONTRACTS = REPO / "docs/CONTRACTS.md"
PACKAGES = ("cebra_core", "cebra_workflow")


def module_file(dotted: str, src: Path = SRC) -> tuple[Path, list[str]] | None:
    """(the source file of the longest importable prefix of ``dotted``, the names after it), from
    the files under ``src`` (nothing is imported); None when not even the package exists."""
    parts = dotted.split(".")
    for k in range(len(parts), 0, -1):
        base = src.joinpath(*parts[:k])
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate, parts[k:]
    return None


def defines(path: Path, name: str) -> bool:
    """Whether a module's source defines ``name`` at its top level (a def, class, assignment or
    import), or, for a package's __init__.py, names it as a string (the names it imports on first use)."""
    text = path.read_text()
    if path.name == "__init__.py" and re.search(rf"""["']{re.escape(name)}["']""", text):
        return True
    for node in ast.parse(text).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return True
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return True
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            if any((alias.asname or alias.name.split(".")[0]) == name for alias in node.names):
                return True
    return False


def module_problems(text: str, page: str, src: Path = SRC) -> list[str]:
    """Every `cebra_core.x.y` / `cebra_workflow.x` a page names: a module under src/, and the first
    name after the module defined in it (`cebra_core.CEBRA.load`: CEBRA in cebra_core)."""
    problems = []
    for dotted in sorted(set(re.findall(rf"\b(?:{'|'.join(PACKAGES)})(?:\.\w+)+", text))):
        found = module_file(dotted, src)
        if found is None:
            problems.append(f"{page}: names {dotted}, which is not a module under src/")
            continue
        path, rest = found
        if rest and not defines(path, rest[0]):
            problems.append(f"{page}: names {dotted}, but {path.relative_to(src)} defines no {rest[0]}")
    return problems


def test_docs_name_only_modules_that_exist():
    pages = [*doc_pages(), REPO / "config/README.md"]
    problems = [p for page in pages for p in module_problems(page.read_text(), page.relative_to(REPO).as_posix())]
    assert not problems, "\n".join(problems)


def test_module_check_catches_made_up_modules():
    good = "`cebra_core.engine.estimator`, `cebra_core.CEBRA.load`, `cebra_core.analysis.metrics.consistency_score`"
    assert module_problems(good, "good") == []
    for bad in ("cebra_core.metrics", "cebra_core.planning", "cebra_core.analysis.metrics.no_such_function",
                "cebra_workflow.planning"):
        problems = module_problems(f"see `{bad}`", "bad")
        assert problems and bad in problems[0], (bad, problems)


def source_modules(src: Path = SRC) -> set[str]:
    """Every module of the two packages as CONTRACTS.md names it: `engine/model.py` (relative to
    src/cebra_core/), `cebra_workflow/plan.py`, and the two packages' `__init__.py`; a layer's own
    `__init__.py` is its folder, not a module of its own."""
    found = {"cebra_core/__init__.py", "cebra_workflow/__init__.py"}
    for path in (src / "cebra_core").rglob("*.py"):
        relative = path.relative_to(src / "cebra_core")
        if path.name != "__init__.py" and "__pycache__" not in relative.parts:
            found.add(relative.as_posix())
    for path in (src / "cebra_workflow").glob("*.py"):
        if path.name != "__init__.py":
            found.add(f"cebra_workflow/{path.name}")
    return found


def contract_rows(text: str) -> dict[str, str]:
    """{module: layer} of the module table of CONTRACTS.md (the table headed `| module | layer |`)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(r"\|\s*module\s*\|\s*layer\s*\|", line))
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0].strip("`")] = cells[1]
    return rows


def contract_problems(text: str, src: Path = SRC) -> list[str]:
    rows = contract_rows(text)
    modules = source_modules(src)
    problems = [f"docs/CONTRACTS.md does not list {m}" for m in sorted(modules - set(rows))]
    problems += [f"docs/CONTRACTS.md lists {m}, which is not a module under src/" for m in sorted(set(rows) - modules)]
    for module, layer in rows.items():  # the layer is the folder: sessions/…, engine/…; the plan; the root
        folder = module.split("/")[0]
        want = {"cebra_workflow": "plan", "cebra_core": "root"}.get(folder, folder)
        if module in modules and layer != want:
            problems.append(f"docs/CONTRACTS.md puts {module} in layer {layer!r}; its folder says {want!r}")
    return problems


def test_contracts_lists_every_module_in_its_layer():
    """docs/CONTRACTS.md's module table holds every module of src/cebra_core and src/cebra_workflow, no
    other, each in the layer its folder is; and it states the layering rule tests/repo/test_layout.py enforces."""
    text = CONTRACTS.read_text()
    problems = contract_problems(text)
    assert not problems, "\n".join(problems)
    assert "sessions  <  engine  <  analysis  <  figures  <  steps" in text
    assert "`tests/repo/test_layout.py`" in text
    assert "`cebra_core.sessions.rats`" in text and "`cebra_core.analysis.protocols`" in text


def test_contract_check_catches_a_missing_or_misplaced_module():
    """A row taken out, a module put in another layer, a row for a module that does not exist: each is
    one more problem than the page as it is has."""
    text = CONTRACTS.read_text()
    before = set(contract_problems(text))

    def added(changed: str) -> set[str]:
        return set(contract_problems(changed)) - before

    assert "| `engine/loss.py` | engine |" in text
    missing = re.sub(r"^\| `engine/loss\.py` .*\n", "", text, flags=re.M)
    assert added(missing) == {"docs/CONTRACTS.md does not list engine/loss.py"}
    misplaced = text.replace("| `engine/loss.py` | engine |", "| `engine/loss.py` | analysis |")
    assert added(misplaced) == {"docs/CONTRACTS.md puts engine/loss.py in layer 'analysis'; its folder says 'engine'"}
    extra = text.replace("| `engine/loss.py` |", "| `engine/losses.py` | engine | x |\n| `engine/loss.py` |")
    assert added(extra) == {"docs/CONTRACTS.md lists engine/losses.py, which is not a module under src/"}


# --- the example configs and the docs' config snippets are valid configs ------------------------------

def validate_config(config: dict) -> None:
    """``config`` merged over config/config.yaml (as Snakemake merges a --configfile), checked against the
    schema: a misspelt key, a wrong type or a value out of range raises jsonschema's ValidationError."""
    from cebra_workflow.config import deep_merge

    schema = yaml.safe_load(SCHEMA.read_text())
    merged = deep_merge(yaml.safe_load((REPO / "config/config.yaml").read_text()), config)
    jsonschema.validators.validator_for(schema)(schema).validate(merged)


def yaml_snippets(text: str) -> list[dict]:
    """The ```yaml blocks of a page that are configs: mappings whose keys are all top-level schema keys."""
    top = set(yaml.safe_load(SCHEMA.read_text())["properties"])
    found = []
    for block in re.findall(r"^```ya?ml\n(.*?)^```", text, re.M | re.S):
        value = yaml.safe_load(block)
        if isinstance(value, dict) and value and set(value) <= top:
            found.append(value)
    return found


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "config").glob("*.example.yaml")))
def test_example_configs_hold_only_schema_keys(name):
    validate_config(yaml.safe_load((REPO / "config" / name).read_text()))


def test_config_snippets_in_the_docs_are_valid():
    pages = [*doc_pages(), REPO / "config/README.md"]
    snippets = [snippet for page in pages for snippet in yaml_snippets(page.read_text())]
    assert len(snippets) >= 4  # your-data.md's three, config/README.md's one
    for snippet in snippets:
        validate_config(snippet)
    with pytest.raises(jsonschema.ValidationError):
        validate_config(yaml_snippets("```yaml\ncebra: {max_iteration: 5}\n```\n")[0])
    with pytest.raises(jsonschema.ValidationError):
        validate_config({"cebra": {"output_dimension": 2}})


# --- measured tables name their source and machine; no GPU figure without its GPU ---------------------

# A measured table is a markdown table (a header row, then a | --- | row) that
#   - has "measured" in its header row, in the text between it and the heading or table above it, or
#     in that heading; or
#   - has a header cell that names a time or a speed (it/s, wall, (s), min, minutes, seconds, time,
#     speed); or
#   - follows text (since the heading or table above it) that names a benchmark script.
# Its caption is that text plus the paragraph just below the table. Caption and table together must
# name a source, a benchmark script (`benchmarks/….py`), a test file (`tests/….py`) or a config the
# workflow ran (`config/….yaml`), and the machine, a CPU or GPU model ("AMD EPYC", "Intel Xeon", …).
# Where the machine was not recorded, the caption says "model not recorded"; that is allowed only
# for tables without a time or speed column (scores of seeded runs, not timings).
GPU_MODELS = (r"H100|H200|H800|A100|A800|A40|A30|A10G?|A6000|V100|P100|T4|L4|L40S?|GH200|B200|RTX|GTX|"
              r"Tesla|Quadro|GeForce|Titan|Radeon|Instinct|MI\d{3}X?")
MACHINE = re.compile(rf"\b(?:AMD EPYC|Intel Xeon|Intel Core|AMD Ryzen|Apple M\d|Graviton|Ampere Altra|{GPU_MODELS})\b")
MACHINE_NOT_RECORDED = re.compile(r"\bmodel not recorded\b")
SOURCE = re.compile(r"\b(?:benchmarks/[\w/.-]+\.py|tests/[\w/.-]+\.py|config/[\w.-]+\.yaml)\b")
BENCHMARK = re.compile(r"\bbenchmarks/[\w/.-]+\.py\b")
MEASURED = re.compile(r"\bmeasured\b", re.I)
TIME_OR_SPEED = re.compile(r"it/s|\bwall\b|\(s\)|\bmin\b|\bminutes?\b|\bseconds?\b|\bhours?\b|\btimes?\b|\bspeed", re.I)


def without_fences(text: str) -> list[str]:
    """The page's lines with every fenced code block blanked (tables and headings inside code are not)."""
    lines, inside = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            inside = not inside
            lines.append("")
        else:
            lines.append("" if inside else line)
    return lines


def markdown_tables(text: str) -> list[dict]:
    """Every table of a page: its lines, header row, the text above it (up to the heading or table
    before it), that heading, and the paragraph below it."""
    lines = without_fences(text)
    tables, i, heading, above_start = [], 0, "", 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            heading, above_start = line, i + 1
        is_table = (line.startswith("|") and i + 1 < len(lines)
                    and re.fullmatch(r"\|(\s*:?-{3,}:?\s*\|)+", lines[i + 1].strip()))
        if not is_table:
            i += 1
            continue
        end = i
        while end < len(lines) and lines[end].startswith("|"):
            end += 1
        below, j = [], end
        while j < len(lines) and not lines[j].strip():
            j += 1
        while j < len(lines) and lines[j].strip() and not lines[j].startswith(("|", "#")):
            below.append(lines[j])
            j += 1
        tables.append({"line": i + 1, "header": line, "rows": lines[i:end], "heading": heading,
                       "above": "\n".join(lines[above_start:i]), "below": "\n".join(below)})
        i, above_start = end, end
    return tables


def is_measured(table: dict) -> bool:
    return bool(MEASURED.search(table["header"] + "\n" + table["above"] + "\n" + table["heading"])
                or TIME_OR_SPEED.search(table["header"]) or BENCHMARK.search(table["above"]))


def measured_table_problems(text: str, page: str) -> list[str]:
    problems = []
    for table in filter(is_measured, markdown_tables(text)):
        where = f"{page}:{table['line']}"
        caption = "\n".join([table["above"], table["below"], *table["rows"]])
        if not SOURCE.search(caption):
            problems.append(f"{where}: a measured table names no source (benchmarks/….py, tests/….py or config/….yaml)")
        if not MACHINE.search(caption):
            if not MACHINE_NOT_RECORDED.search(caption):
                problems.append(f"{where}: a measured table names no machine (e.g. AMD EPYC, Intel Xeon, a GPU model)")
            elif TIME_OR_SPEED.search(table["header"]):
                problems.append(f"{where}: a table of times or speeds needs the machine's name, not 'model not recorded'")
    return problems


def test_measured_tables_name_their_source_and_machine():
    found = {page.name: len([t for t in markdown_tables(page.read_text()) if is_measured(t)]) for page in doc_pages()}
    # the rule finds (at least) the measured tables the pages hold
    assert found["performance.md"] >= 3 and found["evaluation.md"] >= 6 and found["running.md"] >= 1, found
    assert found["README.md"] >= 1 and found["troubleshooting.md"] == found["configuration.md"] == 0, found
    problems = [p for page in doc_pages() for p in measured_table_problems(page.read_text(), page.name)]
    assert not problems, "\n".join(problems)


def test_a_measured_table_without_its_source_fails():
    table = "| case | it/s |\n| --- | ---: |\n| achilles-sized | 24.2 |\n"
    sourced = "Measured with `benchmarks/bench_training.py` on a 2-core AMD EPYC, 2 threads:\n\n" + table
    assert measured_table_problems(sourced, "good") == []
    no_source = "Measured on a 2-core AMD EPYC, 2 threads:\n\n" + table
    assert [p for p in measured_table_problems(no_source, "bad") if "no source" in p]
    no_machine = "Measured with `benchmarks/bench_training.py`, 2 threads:\n\n" + table
    assert [p for p in measured_table_problems(no_machine, "bad") if "no machine" in p]
    not_recorded = "With `benchmarks/bench_training.py` on a CPU (its model not recorded):\n\n" + table
    assert [p for p in measured_table_problems(not_recorded, "bad") if "needs the machine" in p]
    # scores (no time column) from a named run may leave the machine unrecorded, if they say so
    scores = "## Measured: seeds\n\nThe workflow on `config/sample.yaml` (a CPU, its model not recorded):\n\n" \
             "| | single | multi |\n| --- | --- | --- |\n| consistency | 0.80 | 0.83 |\n"
    assert measured_table_problems(scores, "good") == []
    assert measured_table_problems(scores.replace("`config/sample.yaml` ", ""), "bad")
    # a table that measures nothing is left alone
    assert measured_table_problems("| path | what |\n| --- | --- |\n| `results/x` | 3 files |\n", "good") == []


# A GPU figure is a sentence (or a table row) outside code that mentions a GPU or CUDA together with a
# time or speed figure: a number with a unit of time or speed (s, min, h, it/s, ×), or a bare
# duration ("are minutes", "takes hours"). It must name the GPU's model in the same sentence.
GPU = re.compile(r"\bGPUs?\b|\bCUDA\b", re.I)
NUMBER_WITH_UNIT = re.compile(r"\d(?:[\d.,]*\d)?\s*(?:[–-]\s*\d(?:[\d.,]*\d)?\s*)?"
                              r"(?:ms|s|sec|seconds?|min|minutes?|h|hours?|it/s|×|x)(?![\w/])")
BARE_DURATION = re.compile(r"\b(?:a few|few|several|in|are|is|takes?|take|within|under)\s+(?:seconds|minutes|hours)\b", re.I)
GPU_MODEL = re.compile(rf"\b(?:{GPU_MODELS})\b")


def sentences(text: str) -> list[str]:
    """A page's prose split into sentences (table rows and list items apart), `code` left out."""
    items = []  # paragraphs and list items, each joined into one line; table rows one each
    for line in without_fences(text):
        if not line.strip():
            items.append("")
        elif line.startswith("|") or re.match(r"\s*(?:[-*]|\d+\.)\s", line) or not items:
            items.append(line.strip())
        else:
            items[-1] = f"{items[-1]} {line.strip()}".strip()
    units = []
    for item in items:
        parts = [item] if item.startswith("|") else re.split(r"(?<=[.!?])\s+(?=[A-Z*(\[_`])", item)
        units += [re.sub(r"`[^`]*`", "CODE", part) for part in parts]
    return [unit for unit in units if unit.strip()]


def gpu_claims(text: str) -> list[str]:
    return [s for s in sentences(text) if GPU.search(s) and (NUMBER_WITH_UNIT.search(s) or BARE_DURATION.search(s))
            and not GPU_MODEL.search(s)]


def test_no_gpu_figure_without_the_gpus_name():
    """No page gives a time or speed on a GPU unless it names the GPU (none has been recorded)."""
    found = {page.name: gpu_claims(page.read_text()) for page in [*doc_pages(), REPO / "config/README.md"]}
    assert not {name: claims for name, claims in found.items() if claims}


def test_a_made_up_gpu_claim_fails():
    for claim in ("The demo's 5 fits take ≈ 21 min on a GPU.", "On a GPU they are minutes.",
                  "A fit runs at 300 it/s on CUDA.", "cebra_core is 40× faster on a\nGPU than CEBRA.",
                  "| multi-session, on a GPU | 95.0 it/s |"):
        assert gpu_claims(claim) == [re.sub(r"\s*\n\s*", " ", claim)], claim
    for fine in ("A fit on an NVIDIA H100 takes 40 s (`benchmarks/bench_training.py --device cuda`).",
                 "On a GPU: not measured.", "A fit takes 3 min on the Intel Xeon. On a GPU, take r from its log.",
                 "Each fit asks for one GPU (`runtime: 180 * attempt` minutes).",
                 "conda-forge's `pytorch=2.13.0` is a CUDA build where the machine has an NVIDIA driver."):
        assert gpu_claims(fine) == [], fine


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
