"""What a saved directory carries to the Hub: dataset and model cards, pushing (`cards`), and loading a saved
model with its processor (`loading`)."""
