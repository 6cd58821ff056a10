# Hugging Face dataset rules (placeholder; replaced by the dataset stage).
