"""Add new items to an export's catalog without retraining: each is placed by its text alone.

    python scripts/add_items.py export=exports/mi items=new_items.csv out=exports/mi_grown
    python scripts/add_items.py export=exports/mi items=new.parquet out=exports/mi overwrite=true \
        item_fields.item=sku item_fields.categories=[path]
"""

import json
from pathlib import Path

import hydra
from omegaconf import DictConfig

from recsys.cli import exit_on_user_error, readable_overrides, settings_from
from recsys.settings import flag_setting


@settings_from("export")
@readable_overrides
@hydra.main(version_base="1.3", config_path="../conf", config_name="add_items")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    overwrite = flag_setting(cfg, "overwrite")  # before reading the items
    # Imported here, so that --help, Hydra's own errors and the flag's answer before torch loads (~6 s).
    import pandas as pd

    from recsys.data.readers import read_items
    from recsys.data.texts import metadata_document
    from recsys.export.format import MANIFEST
    from recsys.export.new_items import add_items

    fields = hydra.utils.instantiate(cfg.item_fields, setting="item_fields")  # named so in messages
    read = read_items(Path(cfg["items"]), cfg.on_bad_line, fields=fields,  # cfg["items"]: cfg.items is a method
                      policy_setting="on_bad_line")
    read.report.log_summary()
    documents = pd.DataFrame({"item_id": read.table["item_id"],
                              "document": [metadata_document(row) for row in read.table.itertuples(index=False)]})
    out = add_items(cfg.export, documents, cfg.out, overwrite=overwrite, skip_empty=cfg.on_bad_line == "skip")
    # The count the new manifest records: on_bad_line=skip leaves items without text out.
    added = json.loads((out / MANIFEST).read_text())["added_items"][-1]["count"]
    print(f"Added {added} items: {out}")


if __name__ == "__main__":
    main()
