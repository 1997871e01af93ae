#!/bin/sh
# Generates slapd.conf (the same shape the test fixture writes), starts slapd and seeds it
# with seed.ldif on the first start.
set -eu
DB=/var/lib/ldap-tessera
mkdir -p "$DB"
cat > /deploy/slapd.conf <<CONF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
include /deploy/ad-lite.schema
pidfile /deploy/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
moduleload ppolicy
database mdb
suffix "dc=corp,dc=example"
rootdn "cn=admin,dc=corp,dc=example"
rootpw admin-Pass-1
directory $DB
index objectClass eq
index uid,sAMAccountName,userPrincipalName eq
access to attrs=userPassword
  by self write
  by anonymous auth
  by * none
access to *
  by dn.exact="cn=svc-tessera,ou=services,dc=corp,dc=example" read
  by self read
  by anonymous auth
  by * none
overlay memberof
overlay ppolicy
ppolicy_default "cn=default,ou=policies,dc=corp,dc=example"
ppolicy_hash_cleartext
CONF
slapd -d 0 -h "ldap:///" -f /deploy/slapd.conf &
pid=$!
# Seed through the running server (not slapadd): the memberof overlay must see the adds.
if [ ! -e "$DB/.seeded" ]; then
  until ldapsearch -x -H ldap:/// -b "" -s base >/dev/null 2>&1; do sleep 0.2; done
  ldapadd -x -H ldap:/// -D "cn=admin,dc=corp,dc=example" -w admin-Pass-1 -f /deploy/seed.ldif
  touch "$DB/.seeded"
fi
wait "$pid"
