"""The catalogue: data elements, datasets, agency mappings and the sharing-responsibility list."""
