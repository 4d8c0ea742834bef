"""Review data: reading raw files, validation, splits, texts, tokenization, the DataModule.

Import from the submodules (``recsys.data.datamodule``, ``recsys.data.errors``...): the package
itself imports nothing, so that a light module (the errors, the split specification) does not
load torch and Lightning with it.
"""
