"""Dynamic cards, as real MAD hubs write them: one card per batch size."""
import sys

from madengine.utils.discover_models import CustomModel


def list_models():
    print("generating dummy3 cards", file=sys.stderr)
    return [
        CustomModel(
            name=f"model3_bs{batch}",
            dockerfile="../../docker/dummy",
            scripts="run.sh",
            n_gpus="1",
            owner="mad.support@example.com",
            training_precision="",
            tags=["dummies", "dynamic"],
            args=f"--batch-size {batch}",
        )
        for batch in (1, 16)
    ]
