#!/bin/bash
# cloud-init user-data for Ubuntu 24.04 LTS on EC2: Relevo in a venv under
# systemd, behind nginx, with a daily retention timer. See docs/deploy-ec2.md.
# Edit the four settings below before launching (or pass them in the environment).
set -euo pipefail

RELEVO_REPO="${RELEVO_REPO:-https://example.invalid/your-org/relevo.git}"  # your clone URL
RELEVO_REF="${RELEVO_REF:-main}"
SERVER_NAME="${SERVER_NAME:-relevo.example.com}"        # DNS name pointing at the instance
ADMIN_ALLOWED_CIDR="${ADMIN_ALLOWED_CIDR:-203.0.113.0/24}"  # who may open /admin and /metrics
LETSENCRYPT_EMAIL="${LETSENCRYPT_EMAIL:-}"              # set it to get a certificate at boot

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q python3 python3-venv git nginx certbot python3-certbot-nginx

id relevo >/dev/null 2>&1 || useradd --system --home-dir /var/lib/relevo --shell /usr/sbin/nologin relevo
install -d -o relevo -g relevo -m 0750 /var/lib/relevo /var/lib/relevo/data
install -d -m 0755 /opt/relevo
install -d -m 0750 -g relevo /etc/relevo

if [ ! -d /opt/relevo/app/.git ]; then
  git clone --branch "$RELEVO_REF" --depth 1 "$RELEVO_REPO" /opt/relevo/app
fi
python3 -m venv /opt/relevo/venv
/opt/relevo/venv/bin/pip install -q --upgrade pip
/opt/relevo/venv/bin/pip install -q -r /opt/relevo/app/requirements.txt

if [ ! -f /etc/relevo/relevo.env ]; then
  secret="$(python3 -c 'import secrets; print(secrets.token_urlsafe(50))')"
  cat > /etc/relevo/relevo.env <<ENV
DJANGO_SECRET_KEY=$secret
DJANGO_ALLOWED_HOSTS=$SERVER_NAME,127.0.0.1,localhost
DJANGO_CSRF_TRUSTED_ORIGINS=https://$SERVER_NAME
INVENTORY_DATA_DIR=/var/lib/relevo/data
INVENTORY_TRUSTED_PROXIES=127.0.0.1
INVENTORY_RETENTION_DAYS=90
HOST=127.0.0.1
PORT=8000
WEB_CONCURRENCY=$(( $(nproc) * 2 ))
# DATABASE_URL=postgres://relevo:PASSWORD@your-rds-endpoint:5432/relevo
ENV
  chmod 0640 /etc/relevo/relevo.env
  chgrp relevo /etc/relevo/relevo.env
fi

cd /opt/relevo/app
# The code (and its collected static files) belongs to root; the service only reads it.
(set -a; . /etc/relevo/relevo.env; set +a; /opt/relevo/venv/bin/python manage.py collectstatic --noinput -v 0)
chown -R root:root /opt/relevo/app

install -m 0644 deploy/ec2/relevo.service /etc/systemd/system/relevo.service
install -m 0644 deploy/ec2/relevo-prune.service /etc/systemd/system/relevo-prune.service
install -m 0644 deploy/ec2/relevo-prune.timer /etc/systemd/system/relevo-prune.timer
install -m 0644 deploy/ec2/relevo-alerts.service /etc/systemd/system/relevo-alerts.service
install -m 0644 deploy/ec2/relevo-proxy.conf /etc/nginx/relevo-proxy.conf
sed -e "s|RELEVO_SERVER_NAME|$SERVER_NAME|g" -e "s|ADMIN_ALLOWED_CIDR|$ADMIN_ALLOWED_CIDR|g" \
  deploy/ec2/nginx-relevo.conf > /etc/nginx/sites-available/relevo
ln -sf /etc/nginx/sites-available/relevo /etc/nginx/sites-enabled/relevo
rm -f /etc/nginx/sites-enabled/default

systemctl daemon-reload
systemctl enable --now relevo.service relevo-prune.timer relevo-alerts.service
nginx -t
systemctl reload nginx

if [ -n "$LETSENCRYPT_EMAIL" ]; then
  certbot --nginx --non-interactive --agree-tos --redirect -m "$LETSENCRYPT_EMAIL" -d "$SERVER_NAME"
fi

echo "Relevo is up. Create credentials with:"
echo "  sudo -u relevo bash -c 'set -a; . /etc/relevo/relevo.env; cd /opt/relevo/app; /opt/relevo/venv/bin/python manage.py create_agent_token fleet'"
