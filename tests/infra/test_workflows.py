"""The delivery workflows call only things that exist: make targets, repo scripts, stacks, outputs, pipelines.

Azure and GitHub are not reachable here, so external CLIs are checked for being set up by an
earlier step of the same job (`az` by azure/login, `pulumi` by pulumi/actions), and what the
commands refer to inside this repository is checked against the repository itself.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess

import pytest
import yaml

from infra.preview import REPO_ROOT

WORKFLOWS = sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml"))
SCRIPTS = sorted((REPO_ROOT / "infra" / "ci").glob("*.sh"))
# Tools of GitHub's ubuntu-latest image, and shell built-ins the steps use.
PREINSTALLED = {"zip", "jq", "bash"}
BUILTINS = {"cd", "echo", "exit", "set", "true"}
SETUP_ACTIONS = {"az": "azure/login", "pulumi": "pulumi/actions"}
_SUBST = re.compile(r"\$\(([^()]*)\)")


def make_targets() -> set[str]:
    text = (REPO_ROOT / "Makefile").read_text()
    return {m.group(1) for m in re.finditer(r"^([A-Za-z][\w.-]*)\s*:(?!=)", text, re.MULTILINE)}


def shell_commands(script: str) -> list[list[str]]:
    """Simple commands of a `run:` block, including those inside $(...) substitutions."""
    script = script.replace("\\\n", " ")
    found: list[list[str]] = []
    for line in script.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        while _SUBST.search(line):
            found += shell_commands(_SUBST.search(line).group(1))
            line = _SUBST.sub("SUBST", line, count=1)
        for part in re.split(r"&&|\|\||[;|()]", line):
            words = shlex.split(part)
            if words:
                found.append(words)
    return found


def jobs():
    for path in WORKFLOWS:
        workflow = yaml.safe_load(path.read_text())
        for job_name, job in workflow["jobs"].items():
            yield path.name, job_name, job


def stack_values(expression: str, job: dict) -> set[str]:
    """The stack names a `--stack` argument can take (literal, matrix or env expression)."""
    if "matrix.stack" in expression:
        return set(job["strategy"]["matrix"]["stack"])
    if "$STACK" in expression or "${{" in expression:
        return set(re.findall(r"'(\w+)'", job.get("env", {}).get("STACK", expression)))
    return {expression}


@pytest.fixture(scope="module")
def exported_outputs(dev_run) -> set[str]:
    return set(dev_run.outputs)


def test_there_are_pr_and_deploy_workflows():
    triggers = {path.name: yaml.safe_load(path.read_text())[True] for path in WORKFLOWS}  # `on:` parses as True
    assert any("pull_request" in t for t in triggers.values())
    deploy = [t for t in triggers.values() if "push" in t]
    assert deploy and deploy[0]["push"]["branches"] == ["main"] and deploy[0]["push"]["tags"] == ["v*"]


def test_prod_deploys_only_from_release_tags_behind_the_prod_environment():
    deploy = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "deploy.yml").read_text())["jobs"]["deploy"]
    assert deploy["environment"] == deploy["env"]["STACK"]
    assert "startsWith(github.ref, 'refs/tags/v') && 'prod' || 'dev'" in deploy["environment"]


def test_every_command_the_workflows_run_exists():
    targets = make_targets()
    problems = []
    for workflow, job_name, job in jobs():
        used_actions: list[str] = []
        for step in job["steps"]:
            if "uses" in step:
                used_actions.append(step["uses"].split("@")[0])
                continue
            for words in shell_commands(step["run"]):
                tool, where = words[0], f"{workflow}:{job_name}: {' '.join(words)}"
                if re.match(r"^\w+=", tool):
                    continue  # a variable assignment
                if tool == "make":
                    problems += [f"{where}: no make target {t}" for t in words[1:] if t not in targets]
                elif "/" in tool:
                    path = REPO_ROOT / tool
                    if tool.startswith(".venv/bin/"):
                        if not any("make venv" in s.get("run", "") for s in job["steps"]):
                            problems.append(f"{where}: .venv is used but `make venv` never runs")
                    elif not path.is_file() or not path.stat().st_mode & 0o111:
                        problems.append(f"{where}: {tool} is not an executable file in the repository")
                elif tool in SETUP_ACTIONS:
                    if SETUP_ACTIONS[tool] not in used_actions:
                        problems.append(f"{where}: {tool} is used before {SETUP_ACTIONS[tool]} sets it up")
                elif tool not in PREINSTALLED | BUILTINS:
                    problems.append(f"{where}: unknown command {tool}")
    assert problems == []


def test_make_targets_the_workflows_need_are_in_the_makefile():
    assert {"venv", "test"} <= make_targets()


def test_pulumi_commands_name_existing_stacks_and_exported_outputs(exported_outputs):
    problems = []
    for workflow, job_name, job in jobs():
        for step in job["steps"]:
            for words in shell_commands(step.get("run", "")):
                if words[0] != "pulumi":
                    continue
                if "--stack" in words:
                    for stack in stack_values(words[words.index("--stack") + 1], job):
                        if not (REPO_ROOT / f"Pulumi.{stack}.yaml").is_file():
                            problems.append(f"{workflow}:{job_name}: no Pulumi.{stack}.yaml")
                if words[1:3] == ["stack", "output"] and words[3] not in exported_outputs:
                    problems.append(f"{workflow}:{job_name}: the program exports no {words[3]}")
    for script in SCRIPTS:
        for name in re.findall(r"pulumi stack output (\w+)", script.read_text()):
            if name not in exported_outputs:
                problems.append(f"{script.name}: the program exports no {name}")
    assert problems == []


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_are_executable_valid_bash_and_add_the_datafactory_extension_first(script):
    assert script.stat().st_mode & 0o111
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    if "az datafactory" in text:
        assert text.index("az extension add --name datafactory") < text.index("az datafactory")


def test_smoke_run_starts_a_pipeline_that_exists_with_parameters_it_declares():
    text = (REPO_ROOT / "infra" / "ci" / "smoke_run.sh").read_text()
    pipeline = re.search(r'pipeline="(\w+)"', text).group(1)
    document = json.loads((REPO_ROOT / "adf" / "pipeline" / f"{pipeline}.json").read_text())
    passed = set(re.findall(r'\\"(\w+)\\":', text))
    assert passed and passed <= set(document["properties"]["parameters"])


def test_deploy_stops_triggers_before_pulumi_up_and_starts_them_before_the_smoke_run():
    steps = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "deploy.yml").read_text())["jobs"]["deploy"]["steps"]
    runs = [s.get("run", "") for s in steps]

    def index(fragment: str) -> int:
        return next(i for i, r in enumerate(runs) if fragment in r)

    assert index("factory_triggers.sh stop") < index("pulumi up") < index("factory_triggers.sh start")
    assert index("factory_triggers.sh start") < index("smoke_run.sh")


def test_shell_command_extraction_sees_substitutions_and_pipes():
    commands = shell_commands('x="$(pulumi stack output a --stack dev)"\nmake venv && echo hi | jq -r .')
    assert [c[0] for c in commands] == ["pulumi", "x=SUBST", "make", "echo", "jq"]


def test_only_make_package_builds_deployables_and_every_job_that_deploys_or_previews_runs_it():
    for workflow, job_name, job in jobs():
        runs = [s.get("run", "") for s in job["steps"]]
        assert not any("pip wheel" in r or "zip " in r for r in runs), f"{workflow}:{job_name} builds on its own"
        if any("pulumi " in r for r in runs):
            assert any("make package" in r for r in runs), f"{workflow}:{job_name} needs the built artifacts"


def test_the_function_app_is_deployed_from_the_built_package_with_entra_id_not_basic_auth():
    steps = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "deploy.yml").read_text())["jobs"]["deploy"]["steps"]
    deploys = [s for s in steps if s.get("uses", "").startswith("Azure/functions-action@")]
    assert len(deploys) == 1 and deploys[0]["with"]["package"] == "build/functions.zip"
    assert "publish-profile" not in deploys[0]["with"], "a publish profile is SCM basic auth, disabled on the app"
    assert not any("config-zip" in s.get("run", "") for s in steps)
    assert "ARTIFACTS ?= build" in (REPO_ROOT / "Makefile").read_text(), "make package writes build/functions.zip"
