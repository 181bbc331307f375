import sys

from calcifer_bot.cli import main

sys.exit(main())
