"""Dynamic cards, written as real MAD packages write them (runs unchanged under madengine)."""
import json
import os
import sys

from madengine.utils.discover_models import CustomModel

# Real scripts chat on stdout and stderr; discovery must not mistake this for cards.
print("family_b: generating models")
print("family_b: reading EDGE_B_VARIANTS", file=sys.stderr)

VARIANTS = int(os.environ.get("EDGE_B_VARIANTS", "2"))
CONTEXT = json.loads(os.environ.get("MAD_CONTEXT") or "{}")


class FamilyBModel(CustomModel):
    """Fills its paths in update_model(), as madengine's dummy3 example does."""

    def update_model(self):
        self.dockerfile = "../../docker/edge_family"
        self.scripts = "run.sh"


def list_models():
    models = [
        CustomModel(
            name=f"dyn_{index}",
            dockerfile="../../docker/edge_family",
            scripts="run.sh",
            n_gpus="1",
            owner="edge@example.com",
            tags=["family_b", "dynamic"],
            args=f"--variant {index}",
            env_vars={"EDGE_B": str(index)},
        )
        for index in range(VARIANTS)
    ]
    models.append(FamilyBModel(name="dyn_hooked", tags=["family_b", str(CONTEXT.get("guest_os", "none")).lower()]))
    return models
