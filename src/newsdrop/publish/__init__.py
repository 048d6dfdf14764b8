"""The store -> feeds/: the build plan, feed formats, pages, WebSub pings."""
