# Consul for the container deployments (docker-compose.yml, deploy/swarm, the
# Kubernetes demo): one server that keeps its data on a volume, with Connect's CA for
# the services' mTLS, and ACLs on with a default policy of deny. `kitshop bootstrap` (a
# one-shot container, a Job on Kubernetes) bootstraps the ACLs and gives each service a
# token; a request without one may read services, nodes and health only. The agent
# keeps the token it is given across restarts.
datacenter       = "dc1"
server           = true
bootstrap_expect = 1
client_addr      = "0.0.0.0"
log_level        = "WARN"
# No call home to HashiCorp's update service from a demo stack.
disable_update_check = true

ui_config {
  enabled = true
}

connect {
  enabled = true
}

acl {
  enabled                  = true
  default_policy           = "deny"
  down_policy              = "extend-cache"
  enable_token_persistence = true
}
