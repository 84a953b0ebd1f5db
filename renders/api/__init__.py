"""The HTTP face: views, forms and their fields, the options and schema documents, auth."""
