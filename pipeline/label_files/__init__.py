"""Label files: the study's imported labels and labelling-session files (CSV and JSONL); the study import."""
