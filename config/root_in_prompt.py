# Prompt variant: the root is given in the prompt, [PATH] root leaf PAUSE.. root .. leaf (the official
# --include_start_node_in_path_finetuning). The root is still the first target. Apply after another config.
root_in_prompt = True
out_dir += '-root'  # out_dir comes from the configs applied before this one
