"""Payments around the PaymentHub contract: wallets (deposits, withdrawals, balances, history),
fiat top-up providers and their webhooks, low-balance alerts, tariffs and billing.

Errors raised here descend from :class:`electra.errors.ElectraError`:

    ElectraError
    ├── InvalidInput
    │   └── WebhookRejected      a webhook that fails verification (signature, timestamp, body)
    └── TopUpFailed              a verified top-up could not be credited yet; the provider retries
"""
