"""Views of studies: the studies list, the best-trial summary, the HTML report and figures, the web servers."""
