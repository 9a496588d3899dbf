# Helpers for fetching Debian packages without installing them, sourced by
# fetch.sh and kbuild.sh. Packages come from the machine's own apt sources
# (board/qemu-virt/setup.sh adds bookworm-backports, derived from them).
#
#   version_in PACKAGE SUITE
#       the version of PACKAGE in SUITE, from `apt-cache madison`.
#   fetch_deb DIR PACKAGE VERSION ARCH
#       downloads PACKAGE=VERSION for ARCH (arm64, all or the host's) into
#       DIR unless it is there, verifies it and prints its path.
#
# Verification: apt checks each .deb's SHA256 against the signed archive
# index while downloading; fetch_deb checks again that the file's SHA256 is
# the one `apt-cache show` lists for that exact version and that
# `dpkg-deb --field` names the package, version and architecture asked for.

if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
export DEBIAN_FRONTEND=noninteractive

version_in() { # package suite
  apt-cache madison "$1" | awk -F' *[|] *' -v s="$2" '$3 ~ " "s"/" { print $2; exit }'
}

fetch_deb() { # dir package version arch
  local dir=$1 name=$2 version=$3 arch=$4 spec file sha
  # An arch-all package takes no architecture qualifier.
  if [ "$arch" = all ]; then spec="$name=$version"; else spec="$name:$arch=$version"; fi
  # apt-get download's file name: an epoch's ':' is written %3a.
  file="${name}_${version//:/%3a}_${arch}.deb"
  mkdir -p "$dir"
  if [ ! -f "$dir/$file" ]; then
    (cd "$dir" && apt-get -o APT::Sandbox::User=root download -qq "$spec")
  fi
  sha=$(apt-cache show "$spec" | sed -n 's/^SHA256: //p' | head -1)
  echo "$sha  $dir/$file" | sha256sum --quiet -c - || { echo "linux: $file: SHA256 mismatch" >&2; return 1; }
  [ "$(dpkg-deb --field "$dir/$file" Package Version Architecture | tr '\n' ' ')" = \
    "Package: $name Version: $version Architecture: $arch " ] ||
    { echo "linux: $file is not $name $version $arch" >&2; return 1; }
  echo "$dir/$file"
}
