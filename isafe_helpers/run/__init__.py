"""Running: the command line (``isafe``) and the pipeline that runs every notebook."""
