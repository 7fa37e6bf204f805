"""Looking inside models: layer tables, MACs, receptive fields, gradient flow."""
