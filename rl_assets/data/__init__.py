"""Data: price sources, the generator, pandera schemas and data-quality checks."""
