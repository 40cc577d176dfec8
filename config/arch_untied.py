# Architecture control: separate input embedding (N(0, 0.02)) and output head instead of one tied
# matrix (the official code's --no-tie_input_output_embeddings, label suffix _untied).
# Apply after another config, e.g.
#   python3 train.py config/official_g5000_l5.py config/arch_untied.py
# Tests which of the two matrices holds the graph geometry: analyze.py reports the input embedding
# under the usual geometry/ names and the output head as geometry/output_...
tie_embeddings = False
out_dir += '-untied'  # out_dir comes from the configs applied before this one
