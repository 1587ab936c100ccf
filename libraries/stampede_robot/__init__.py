"""Robot Framework glue shared by the Stampede keyword libraries (state, HTML logging)."""
