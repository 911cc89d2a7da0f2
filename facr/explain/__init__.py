"""Where an AU is seen and how much it contributes: region maps (Grad-CAM, CE-FAM, attention
rollout), CE-FAM channel-masking contributions, and the region metrics (NRA, EPG, hit rate)."""
