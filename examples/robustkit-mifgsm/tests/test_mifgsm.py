"""The plugin checked against robustkit's attack contract, through its installed entry point."""

import robustkit
from robustkit.testing import check_attack


def test_entry_point_registers_mifgsm():
    entry = robustkit.registry("attack").get("mifgsm")
    assert entry.source.distribution == "robustkit-mifgsm"


def test_mifgsm_meets_the_attack_contract():
    check_attack(robustkit.create("attack", "mifgsm", steps=5))
