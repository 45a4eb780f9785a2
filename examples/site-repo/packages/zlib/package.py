# The site's zlib: it replaces builtin's zlib in every stack that lists this repository under spack.repos, also
# as a dependency of builtin packages (libgreet, curl, openssl, ...).
#
# Written for examples/site-override.yaml, which builds offline with the test suite's Spack stand-in: the sha256
# is that of the source the stand-in makes for this version. A real site writes the sha256 of its own tarball
# (`sha256sum zlib-1.3.1-site.tar.gz`) and keeps the tarball in a source mirror (spack.mirrors).
from spack_repo.builtin.build_systems.generic import Package

from spack.package import *


class Zlib(Package):
    """zlib as this site builds it."""

    homepage = "https://spack-standin.invalid/zlib"
    url = "https://spack-standin.invalid/zlib/zlib-1.3.1-site.tar.gz"

    version("1.3.1-site", sha256="9795b49536febb1ad87b020d2d84cd1ef5677bb5604c8cd2f4aaefc0cb14ef4f")

    variant("shared", default=True, description="shared")
    variant("pic", default=True, description="pic")

    depends_on("c", type="build")
