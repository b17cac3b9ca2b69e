"""dsedge subpackage."""
