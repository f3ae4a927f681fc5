"""One module per blueprint: thin HTTP handlers that call the domain and Authlib."""
