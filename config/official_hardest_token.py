# The official "hardest token" recipe: path rows are [PATH] leaf PAUSE -> the first hop, with no root
# anywhere in the row (--training_recipe mixed_hardest_token). Apply after config/official.py; add
# config/official_staged.py after it for staged_hardest_token.
path_target = 'first_hop'
out_dir += '-hardest'  # out_dir comes from the configs applied before this one
