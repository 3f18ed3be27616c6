# Dev-agent settings for the local demo and the tests. The agent runs with -dev (in
# memory, one node, Connect on); these lines only add what kitshop relies on.
client_addr    = "127.0.0.1"
bind_addr      = "127.0.0.1"
log_level      = "WARN"
ui_config {
  enabled = true
}
