"""The Pulumi program that provisions the lakehouse on Azure: one component per concern."""
