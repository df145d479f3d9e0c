"""The wallet address server's operations: the public documents of wallet addresses."""
