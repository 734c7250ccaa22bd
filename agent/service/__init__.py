"""The appliance as a service: the portal's rpc, detached jobs (one entry point, a registry
of job kinds, a supervisor that stops stalled work), the scheduler and the appliance's
own configuration. Calls the library (store, restore, vm), never the CLI."""
