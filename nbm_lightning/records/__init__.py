"""What a run is and what it leaves, without torch: the recipe, the job, the run record, its W&B keys and tracking."""
