touch "$HOME/.no_auto_tmux"; mkdir -p "$HOME/.ssh"; chmod 700 "$HOME/.ssh"
echo '@PUBLIC_KEY@' >> "$HOME/.ssh/authorized_keys"; chmod 600 "$HOME/.ssh/authorized_keys"
env | grep -v -E '^(CONTAINER_API_KEY|VAST_API_KEY|PATH)=' | grep _ >> /etc/environment
echo "PATH=$PATH" >> /etc/environment
true
