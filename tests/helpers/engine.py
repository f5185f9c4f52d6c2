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
