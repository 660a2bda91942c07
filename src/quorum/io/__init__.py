"""File formats: reading and writing tasks, labels and deliveries."""
