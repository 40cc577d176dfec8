# Prompt variant: teacherless inputs (the official --use_teacherless_inputs): after the prompt the model
# reads a dummy token in place of every path token, so it must produce the whole path from the prompt
# alone; it is evaluated in one forward pass. Apply after another config.
teacherless = True
out_dir += '-teacherless'  # out_dir comes from the configs applied before this one
