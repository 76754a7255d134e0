"""`xsatclip train` flags (no heavy imports: the parser and the command share them)."""

# `xsatclip train` flags: TrainConfig field and help.
TRAIN_FLAGS = {
    "--level": ("level", "Legendre level L (L*L basis features)"),
    "--capacity": ("capacity", "SIREN hidden width"),
    "--layers": ("num_hidden_layers", "SIREN hidden layers"),
    "--embed-dim": ("embed_dim", "embedding size"),
    "--patch-size": ("patch_size", "patch side in pixels"),
    "--locations": ("num_locations", "training + validation locations"),
    "--val-fraction": ("val_fraction", "held-out share of the locations"),
    "--batch-size": ("batch_size", "pairs per step"),
    "--epochs": ("epochs", "passes over the training locations"),
    "--lr": ("learning_rate", "AdamW peak learning rate"),
    "--weight-decay": ("weight_decay", "AdamW weight decay"),
    "--seed": ("seed", "seed of sampling, initialisation and shuffling"),
}
