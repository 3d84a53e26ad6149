"""`--help` teaches: every built-in GPU, model, policy, predictor, router and preset is named
where the option is (the lists had fallen behind: 5 of 11 GPUs, 8 of 20 models), and the
defaults are said."""

from __future__ import annotations

import re

import pytest

from seqsched.app.cli import build_parser
from seqsched.backends.presets import PRESETS
from seqsched.backends.specs import GPUS, MODELS
from seqsched.policies import POLICIES
from seqsched.predictors import PREDICTORS
from seqsched.sim.engine import ROUTERS


def option_help(command: str, flag: str) -> str:
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices[command]
    return next(a.help for a in sub._actions if flag in a.option_strings)


def named(text: str) -> set[str]:
    """Names in a help text, "llama-2-7b/13b/70b" read as three."""
    out = set()
    for token in re.findall(r"[\w.\-/]+", text):
        first, *more = token.split("/")
        out.add(first)
        out.update(first.rsplit("-", 1)[0] + "-" + m for m in more)
    return out


@pytest.mark.parametrize("command", ["simulate", "compare", "sweep", "capacity", "plan"])
@pytest.mark.parametrize("flag, names", [("--gpu", GPUS), ("--model", MODELS),
                                         ("--predictor", PREDICTORS), ("--router", ROUTERS),
                                         ("--backend", PRESETS)])
def test_every_builtin_name_is_listed(command, flag, names):
    text = option_help(command, flag)
    assert set(names) <= named(text), sorted(set(names) - named(text))
    assert "default" in text


def test_every_policy_and_its_default_are_listed():
    text = option_help("simulate", "--policy")
    assert set(POLICIES) <= named(text) and "default fcfs" in text
    assert set(POLICIES) <= named(option_help("sweep", "--policy"))


def test_the_demo_options_say_what_they_do():
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices["demo"]
    assert all(a.help for a in sub._actions)
