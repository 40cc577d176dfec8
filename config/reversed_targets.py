# Prompt variant: the path is asked for backwards, leaf .. root (the official --reverse_path_targets), so
# the first token to produce is the leaf itself and the hard hop comes last. Apply after another config.
path_target = 'reversed'
out_dir += '-reversed'  # out_dir comes from the configs applied before this one
