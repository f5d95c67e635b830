"""The TouchASP Gradio demo: perception of one clip at a chosen expert budget, and all budgets side by side."""
