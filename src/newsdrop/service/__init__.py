"""`newsdrop run`: the watcher, the scheduler, the pipeline process and the web server."""
