"""The objective registry: objectives registered beside their definition, each with its own rules.

A toy objective registered here (no source file touched) is created by name, has its own parameter
rule enforced by ``create_objective`` and ``check_parameters``, is named by its display name in the
report, and trains (a backward pass); every built-in entry has what a report and a study need; the
loss presets (``protocol`` and ``official``) each objective declares."""

import ast
import inspect
import pkgutil
import sys

import pytest
import torch

import kdtemp.objectives as objectives
from kdtemp.objectives import OBJECTIVES, Preset, create_objective, get_spec, kd_loss, registry
from kdtemp.objectives.registry import ParameterRule, check_parameters, display_name_of, register


TOY = "toy_scaled_kd"


# The order of OBJECTIVES before the registry moved beside the functions (reports list methods in it).
LEGACY_ORDER = ["kd", "dkd", "ea_kd", "ea_dkd", "ctkd", "ls_kd", "ls_dkd", "mlkd", "rld", "dist", "ttm", "wttm",
                "normkd", "normkd_dkd", "ats", "dtkd", "energy_kd", "ls_instance", "ls_global", "shuffled_tail"]


@pytest.fixture
def toy():
    """``alpha * kd_loss`` registered as ``toy_scaled_kd``, with an ``alpha`` rule of its own ([0, 1],
    where DKD's and DTKD's ``alpha`` take any number >= 0); removed again afterwards, so that the
    registry-wide tests of other files never see it."""

    @register(TOY, summary="a toy: alpha times KD", official=Preset(0.5, 0.5, 3, 2.0), display_name="Toy KD (scaled)",
              uses_label=False, parameters={"alpha": ParameterRule("number", 0.0, 1.0)})
    def toy_objective(s, t, y, T, alpha: float = 0.5):
        return alpha * kd_loss(s, t, T)

    yield toy_objective
    OBJECTIVES.pop(TOY)


def sample(batch=6, classes=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    student = torch.randn(batch, classes, generator=g, dtype=torch.float64)
    teacher = torch.randn(batch, classes, generator=g, dtype=torch.float64)
    return student, teacher, torch.randint(0, classes, (batch,), generator=g)


# --- A toy objective registered in this file --------------------------------------------------------------------

def test_a_registered_toy_is_created_by_name_and_trains(toy):
    student, teacher, target = sample()
    student.requires_grad_()
    objective = create_objective(TOY, alpha=0.25)
    assert objective.name == TOY and objective.params == {"alpha": 0.25}
    assert objective.spec.defaults == {"alpha": 0.5} and objective.spec.official == Preset(0.5, 0.5, 3, 2.0)
    loss = objective(student, teacher, target, 2.0)
    loss.backward()
    reference = student.detach().clone().requires_grad_()
    expected = 0.25 * kd_loss(reference, teacher, 2.0)
    expected.backward()
    assert loss.item() == expected.item()
    assert torch.equal(student.grad, reference.grad) and student.grad.abs().sum() > 0
    assert get_spec(TOY) is objective.spec and list(OBJECTIVES)[-1] == TOY  # appended after the built-ins


def test_the_toys_own_rule_is_enforced_by_create_objective_and_check_parameters(toy):
    with pytest.raises(ValueError, match=rf"objective '{TOY}': alpha: must be a number >= 0 and <= 1; got 2.0"):
        create_objective(TOY, alpha=2.0)
    with pytest.raises(ValueError, match=r"^alpha: must be a number >= 0 and <= 1; got 2.0$"):
        check_parameters(TOY, {"alpha": 2.0})
    with pytest.raises(ValueError, match=rf"objective '{TOY}' has no parameter 'beta'; allowed: alpha"):
        create_objective(TOY, beta=1.0)
    with pytest.raises(ValueError, match=rf"beta: not a parameter of '{TOY}'; allowed: alpha"):
        check_parameters(TOY, {"beta": 1.0})
    assert check_parameters(TOY, {"alpha": 1}) == {"alpha": 1.0}
    assert check_parameters(TOY, {}) == {"alpha": 0.5}


def test_a_same_named_parameter_of_another_objective_keeps_its_own_rule(toy):
    # alpha = 2 is out of the toy's range but fine for DKD and DTKD, whose rules are their own
    for name in ("dkd", "dtkd"):
        assert create_objective(name, alpha=2.0).params == {"alpha": 2.0}
        assert check_parameters(name, {"alpha": 2})["alpha"] == 2.0
        with pytest.raises(ValueError, match=r"alpha: must be a number >= 0; got -1"):
            check_parameters(name, {"alpha": -1})
    rules = [get_spec(name).parameters["alpha"] for name in (TOY, "dkd", "dtkd")]
    assert len({id(rule) for rule in rules}) == 3


def test_the_toy_appears_in_the_report_with_its_display_name(toy):
    from kdtemp.report.figures import _method_name

    assert display_name_of(TOY) == "Toy KD (scaled)"
    assert _method_name(f"objective={TOY}, policy=fixed, lr=0.1") == "Toy KD (scaled), lr=0.1"
    assert _method_name(f"objective={TOY}, policy=dts, minimum=1, maximum=3") == "Toy KD + DTS [1, 3]"


def test_unknown_and_plug_in_names_are_shown_as_they_are():
    from kdtemp.report.figures import _method_name

    assert display_name_of("pkg.module:loss") == "pkg.module:loss"  # never imported for its name
    assert display_name_of("gone") == "gone"
    assert _method_name("objective=pkg.module:loss") == "pkg.module:loss"


# --- What registration refuses ----------------------------------------------------------------------------------

def loss_with(**defaults):
    def loss(s, t, y, T, alpha=defaults.get("alpha", 0.5)):
        return kd_loss(s, t, T)

    return loss


@pytest.mark.parametrize(
    "name, parameters, loss, message",
    [
        ("kd", {}, lambda s, t, y, T: s.sum(), "objective 'kd' is already registered"),
        ("pkg.mod:loss", {}, lambda s, t, y, T: s.sum(), "has no ':'"),
        ("toy_no_rule", {}, loss_with(), "no parameter rule for alpha"),
        ("toy_extra_rule", {"alpha": ParameterRule("number"), "beta": ParameterRule("number")}, loss_with(),
         "parameter rules for beta, which its loss does not take"),
        ("toy_bad_default", {"alpha": ParameterRule("number", 0.0, 0.1)}, loss_with(),
         r"alpha: must be a number >= 0 and <= 0.1; got 0.5"),
        ("toy_no_default", {"alpha": ParameterRule("number")}, lambda s, t, y, T, alpha: s.sum(),
         "every hyper-parameter needs a default; alpha has none"),
        ("toy_short", {}, lambda s, t, y: s.sum(), r"loss\(student, teacher, target, temperature, \*\*params\)"),
    ],
)
def test_registration_refuses_an_incomplete_objective(name, parameters, loss, message):
    before = list(OBJECTIVES)
    with pytest.raises(ValueError, match=message):
        register(name, summary="x", official=Preset(1.0, 1.0), display_name="x", uses_label=False,
                 parameters=parameters)(loss)
    assert list(OBJECTIVES) == before and OBJECTIVES["kd"].display_name == "KD"


# --- Every registered objective ---------------------------------------------------------------------------------

def test_order_is_the_registration_order_of_before():
    # objectives added since follow, in their modules' order (the divergences of token.py after the built-ins)
    assert list(OBJECTIVES) == LEGACY_ORDER + ["akd", "reverse_kl", "jsd", "skew_kl", "skew_reverse_kl"]


@pytest.mark.parametrize("name", LEGACY_ORDER + ["akd", "reverse_kl", "jsd", "skew_kl", "skew_reverse_kl"])
def test_every_objective_has_a_display_name_a_summary_a_preset_and_its_rules(name):
    spec = OBJECTIVES[name]
    assert spec.name == name and spec.display_name.strip() and spec.summary.strip()
    assert isinstance(spec.official, Preset) and spec.official.kd_weight > 0
    assert set(spec.parameters) == set(spec.defaults)
    assert all(isinstance(rule, ParameterRule) for rule in spec.parameters.values())
    assert check_parameters(name, {}) == spec.defaults  # every default passes its own rule
    assert spec.temperature_policy in ("fixed", "ctkd", "akd")
    assert spec.loss.__module__.startswith("kdtemp.objectives.")  # registered beside its definition


def test_display_names_are_the_reports_names():
    expected = {"kd": "KD", "ls_instance": "per-instance label smoothing",
                "ls_global": "global label smoothing", "shuffled_tail": "shuffled tail (bottom N-k randomised)",
                "dkd": "DKD", "ea_kd": "EA-KD", "ea_dkd": "EA-DKD", "ls_kd": "LS-KD (logit standardization)",
                "ls_dkd": "LS-DKD (logit standardization)", "mlkd": "MLKD", "rld": "RLD", "dist": "DIST",
                "ttm": "TTM", "wttm": "WTTM", "normkd": "NormKD", "normkd_dkd": "NormKD+DKD", "ats": "ATS",
                "dtkd": "DTKD", "energy_kd": "Energy KD",
                "ctkd": "CTKD", "akd": "AKD", "reverse_kl": "RKL", "jsd": "JSD", "skew_kl": "SKL",
                "skew_reverse_kl": "SRKL"}  # the papers' names (a ctkd run's curve is labelled "CTKD (learned T)")
    assert {name: spec.display_name for name, spec in OBJECTIVES.items()} == expected


def test_no_two_objectives_share_a_rule_object():
    owners: dict[int, str] = {}
    for name, spec in OBJECTIVES.items():
        for parameter, rule in spec.parameters.items():
            where = f"{name}.{parameter}"
            assert id(rule) not in owners, f"{where} shares its rule object with {owners.get(id(rule))}"
            owners[id(rule)] = where


def test_labels_and_dataset_statistics_are_declared_with_the_objective():
    assert {n for n, s in OBJECTIVES.items() if s.uses_label} == {"dkd", "ea_dkd", "ls_dkd", "rld", "normkd_dkd", "ats"}
    assert {n for n, s in OBJECTIVES.items() if s.dataset_constants} == {"energy_kd", "ls_global"}
    assert {n for n, s in OBJECTIVES.items() if s.monitor} == {"dtkd"}
    assert {n for n, s in OBJECTIVES.items() if s.temperature_policy != "fixed"} == {"ctkd", "akd"}
    assert {n for n, s in OBJECTIVES.items() if s.phase_one} == {"akd"}  # two phases in one run


# --- Layout: the registry knows no objective; every module registers itself ------------------------------------

def test_the_registry_imports_no_objective_module():
    tree = ast.parse(inspect.getsource(registry))
    relative = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level}
    assert relative <= {"config", "plugins"}, relative  # ..config and ..plugins, for plug-ins only


def test_every_module_of_the_package_is_imported():
    modules = {m.name for m in pkgutil.iter_modules(objectives.__path__)}
    assert set(objectives.BUILTIN_MODULES) <= modules
    for name in modules:
        assert f"kdtemp.objectives.{name}" in sys.modules, name


def test_study_presets_name_registered_objectives():
    from kdtemp.study.presets import PRESETS

    named = {overrides["student.objective"] for variants in PRESETS.values() for _, overrides in variants
             if "student.objective" in overrides}
    assert named and named <= set(OBJECTIVES)


def test_presets_protocol_and_official():
    from kdtemp.objectives import PROTOCOL, preset

    assert preset("dkd", "protocol") == PROTOCOL
    assert (PROTOCOL.ce_weight, PROTOCOL.kd_weight, PROTOCOL.warmup_epochs) == (0.0, 1.0, 0)
    dkd = preset("dkd", "official")
    assert (dkd.ce_weight, dkd.warmup_epochs, dkd.temperature) == (1.0, 20, 4.0)
    assert dkd.warmup(1) == pytest.approx(1 / 20) and dkd.warmup(20) == 1.0 and dkd.warmup(25) == 1.0
    ls = preset("ls_kd", "official")
    assert (ls.kd_weight, ls.ce_weight, ls.temperature) == (9.0, 0.1, 2.0)
    assert preset("dist", "official").kd_weight == 2.0
    assert preset("mlkd", "official").ce_weight == 0.1
    with pytest.raises(ValueError, match="allowed: official, protocol"):
        preset("kd", "paper")
