"""Builders for tiny cohorts used by the engine tests."""

from kdtemp.tasks.image.data import AugmentConfig, DataConfig
from kdtemp.engine import CohortConfig, DTSConfig, MemberConfig, OptimizerConfig
from kdtemp.tasks.image.models import ModelConfig


def tiny_data() -> DataConfig:
    return DataConfig(dataset="digits", resolution=8, train_per_class=16, test_per_class=10)


def tiny_augment() -> AugmentConfig:
    return AugmentConfig(randaugment_ops=1, randaugment_magnitude=9, horizontal_flip=True, mix=True)


def member(**kwargs) -> MemberConfig:
    defaults = dict(model=ModelConfig("resnet20"), epochs=2, optimizer=OptimizerConfig(lr=3e-3))
    defaults.update(kwargs)
    return MemberConfig(**defaults)


def varied_members() -> list[MemberConfig]:
    """Members that differ in temperature, objective, optimizer, policy, epochs and seed."""
    return [
        member(name="kd-T4-adamw", temperature=4.0),
        member(name="dkd-T2-sgd", objective="dkd", temperature=2.0, optimizer=OptimizerConfig(name="sgd", lr=0.05), seed=1),
        member(name="dts", temperature_policy="dts", dts=DTSConfig(initial=3, minimum=1, maximum=3), seed=2),
        member(name="ctkd", objective="ctkd", temperature_policy="ctkd", loss_preset="official", seed=3),
        member(name="kd-T20-short", temperature=20.0, epochs=1, seed=4),
    ]


def cohort(members, **kwargs) -> CohortConfig:
    defaults = dict(data=tiny_data(), augment=tiny_augment(), teacher=ModelConfig("resnet20"),
                    batch_size=32, members=list(members), device="cpu")
    defaults.update(kwargs)
    return CohortConfig(**defaults)


def assert_cohort_equals_each_alone(config: dict, members: list[dict], folder) -> list:
    """Train ``members`` as one cohort of the cohort mapping ``config`` and each alone; their run ids,
    curves, temperature traces and final weights must be equal bit for bit. Returns the cohort's results."""
    import torch

    from kdtemp.config import from_dict
    from kdtemp.engine import run_cohort
    from kdtemp.engine.storage import RunFolder

    together = run_cohort(from_dict(CohortConfig, {**config, "members": members}), output=folder / "cohort",
                          progress=False)
    assert all(r.status == "done" for r in together), [r.error for r in together]
    for index, member_config in enumerate(members):
        (alone,) = run_cohort(from_dict(CohortConfig, {**config, "members": [member_config]}),
                              output=folder / f"solo{index}", progress=False)
        assert alone.run_id == together[index].run_id and alone.curve == together[index].curve
        assert alone.temperature_trace == together[index].temperature_trace
        a = RunFolder(folder / "cohort", alone.run_id).load_checkpoint()["model"]
        b = RunFolder(folder / f"solo{index}", alone.run_id).load_checkpoint()["model"]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert len({str(r.curve) for r in together}) == len(members)  # they differ, so equality proves something
    return together
