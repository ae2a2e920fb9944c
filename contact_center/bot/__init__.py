"""The bot as the customer's first stop: the gateway between a new contact and Rasa."""
