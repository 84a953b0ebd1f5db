# Sourced by scripts/test (and scripts/serve): Debian packages the project
# uses, installed when missing and possible (root with apt-get), without
# starting any daemon they ship (a policy-rc.d refuses it for the install).
# Without them the tests that need a program skip and print why.
#
#   ensure_packages "CHECK-COMMAND:PACKAGE" ...
ensure_packages() {
    local missing=() item check pkg
    for item in "$@"; do
        check="${item%%:*}" pkg="${item#*:}"
        if ! eval "$check" >/dev/null 2>&1; then missing+=("$pkg"); fi
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "missing Debian packages: ${missing[*]} (install them as root: apt-get install ${missing[*]}); what needs them (tests, template fonts) is skipped or limited until then" >&2
        return 0
    fi
    echo "installing Debian packages: ${missing[*]}..."
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy" && made_policy=1
    fi
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}") \
        >/dev/null 2>&1 || echo "could not install ${missing[*]}; what needs them (tests, template fonts) is skipped or limited until then" >&2
    [ "$made_policy" = 1 ] && rm -f "$policy"
    return 0
}

# The template fonts: DejaVu Sans Bold (the default face) and Noto for every
# other common script (about 150 MB installed). Checked by their files.
FONT_PACKAGES_LIST=(
    "test -f /usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf:fonts-dejavu-core"
    "test -f /usr/share/fonts/truetype/noto/NotoSansDevanagari-Bold.ttf:fonts-noto-core"
    "test -f /usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc:fonts-noto-cjk"
    "test -f /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf:fonts-noto-color-emoji"
)
