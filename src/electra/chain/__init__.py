"""Everything that talks to the EVM chain: client, bindings, dev chain, deployment."""
