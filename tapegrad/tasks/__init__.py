"""Workloads beyond the disc classifier, each with a torch twin and a ``tapegrad train --task``.

    digits    a small CNN on scikit-learn's 1,797 bundled 8x8 handwritten digits (needs the
              ``digits`` extra: ``pip install -e ".[digits]"``)
    reverse   a 2-block pre-LayerNorm transformer learning to reverse digit sequences generated
              on the fly, evaluated by greedy decoding on held-out sequences

``digits.py`` / ``reverse.py`` hold the models and training; ``*_data.py`` the data; ``loop.py``
the epoch loop both share; ``twins.py`` the torch.nn + torch.optim twins (the only file here that
runs torch's autograd); ``pictures.py`` the task-specific pictures; ``command.py`` the CLI part.
"""

from typing import Any

TASKS = ("disc", "digits", "reverse")


def task_module(task: str) -> Any:
    """The module of ``task`` ('digits' or 'reverse'): its ``Config``, ``run`` and ``loss_of``."""
    from . import digits, reverse

    modules: dict[str, Any] = {"digits": digits, "reverse": reverse}
    return modules[task]
