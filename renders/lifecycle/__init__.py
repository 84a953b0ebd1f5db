"""The life of a render: its RenderLog, workspace, upload, download, render slots and sweep."""
