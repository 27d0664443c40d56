"""EuroSAT (RGB): ``eurosat/2750/<Class>/<Class>_N.jpg``; folder names become descriptive phrases."""
from engine import DATASET_REGISTRY

from .base import BenchmarkDataset, make_groups, split_by_ratio

CLASSNAMES = {
    "AnnualCrop": "Annual Crop Land",
    "Forest": "Forest",
    "HerbaceousVegetation": "Herbaceous Vegetation Land",
    "Highway": "Highway or Road",
    "Industrial": "Industrial Buildings",
    "Pasture": "Pasture Land",
    "PermanentCrop": "Permanent Crop Land",
    "Residential": "Residential Buildings",
    "River": "River",
    "SeaLake": "Sea or Lake",
}


@DATASET_REGISTRY.register()
class EuroSAT(BenchmarkDataset):
    folder = "eurosat"
    image_folder = "2750"
    split_file = "split_zhou_EuroSAT.json"
    template = "a centered satellite photo of {}."
    doc_anchor = "eurosat"

    def read_raw(self):
        """Classes = sorted folders, renamed by ``CLASSNAMES``; 50/20/30 per class."""
        return split_by_ratio(make_groups(self.image_dir, rename=lambda c: CLASSNAMES.get(c, c)))
