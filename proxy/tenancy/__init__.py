"""Who may call: virtual keys, tenants' documents and the vault for their provider keys."""
